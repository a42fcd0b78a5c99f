"""Allows `python -m bot` as an alias of the `huiyin` command."""

from bot.cli import main

raise SystemExit(main())
