"""Data sources. Modules that need TensorFlow import it lazily."""
