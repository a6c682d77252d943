"""Everything the bot says, one module per feature. HTML parse mode: escape user input."""
