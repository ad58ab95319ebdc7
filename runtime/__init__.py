"""Framework-neutral runtime helpers (data loading), pure numpy."""
