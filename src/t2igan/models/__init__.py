"""Model families, one file each. Importing a module registers its model by name."""
