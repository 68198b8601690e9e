from repotool.cli import main

main()
