from snnconvert.cli import main

main()
