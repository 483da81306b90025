from release_notes.cli import main

main(exit_when_written=True)
