from dzops.cli.app import main

main()
