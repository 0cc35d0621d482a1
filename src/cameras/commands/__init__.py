"""Library functions behind the `cameras` subcommands that produce figures and records."""
