"""The `skiff` command: `main` reads the command line and runs one command module
(`images`, `transfer`, `archive`, `auth`, `system`) on top of skiff.client."""
