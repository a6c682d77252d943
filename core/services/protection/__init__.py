"""Position protection: brackets, their legs and the moves that keep a position covered."""
