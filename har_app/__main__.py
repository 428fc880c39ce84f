from har_app.cli import main

main()
