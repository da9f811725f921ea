"""The pages a person opens in a browser: the home page and the API reference."""
