"""What only the tests and the local stack use: moto hooks, the Bedrock stand-in, stream delivery."""
