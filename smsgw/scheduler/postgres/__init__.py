"""The PostgreSQL engine of the message store: several nodes on one database (DESIGN.md, "Several nodes")."""
