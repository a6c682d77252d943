"""Running the product: configuration, logging, health, migrations, doctor and the CLI."""
