from fst.cli import main

raise SystemExit(main())
