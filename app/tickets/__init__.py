"""The unified ticket model's services: the only code that writes tickets."""
