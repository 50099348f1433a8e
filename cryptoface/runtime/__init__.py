"""Running compiled HE programs on a backend."""
