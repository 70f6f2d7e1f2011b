from archadvisor.cli import main

main()
