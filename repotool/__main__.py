from repotool.entry import main

main()
