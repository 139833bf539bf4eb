"""The one option schema: every option's type, default, range, help and group; files and validation."""
