"""Training data: reading tables from files, finding the columns, turning rows into examples."""
