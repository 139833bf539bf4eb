"""Models: loading encoders and pooling, the teacher as the config names it, projections between spaces, the
sentence-transformers export, the router."""
