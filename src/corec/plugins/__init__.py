"""CoreC's own plugins, one package each; they never import each other."""
