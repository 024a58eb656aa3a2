"""Fresh vectors between refits: which users and items changed, their update files, and the
updates topic."""
