from runbase.cli import main

main()
