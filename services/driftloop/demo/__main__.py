from driftloop.demo.run import main

raise SystemExit(main())
