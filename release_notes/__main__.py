from release_notes.cli import main

main()
