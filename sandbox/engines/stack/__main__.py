from sandbox.engines.stack.builder import main

main()
