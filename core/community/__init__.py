"""Communities as a whole: how alive each channel is, who leads a theme's conversation, and what is published back."""
