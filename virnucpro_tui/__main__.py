from virnucpro_tui.cli import main

raise SystemExit(main())
