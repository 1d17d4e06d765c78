from pysstp.cli import main

raise SystemExit(main())
