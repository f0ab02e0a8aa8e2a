"""The SQLite store: tables, engine and the narrow repository functions above them."""
