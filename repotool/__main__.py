from repotool.cli.entry import main

main()
