"""What a method needs from the teacher (declared) and how the loop supplies it: from the cache or online."""
