"""Models: loading encoders and pooling, projections between spaces, the sentence-transformers export, the router."""
