from noetl.cli import main

raise SystemExit(main())
