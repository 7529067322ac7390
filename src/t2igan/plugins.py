"""Imports the modules that add CLI commands and ``sample`` flags (eval, pretrain, serve, ...)."""
