"""The offline sandbox: emulators of Salesforce, HubSpot, Zendesk and Mixpanel and a synthetic book, for demos and tests (the `healthsync-sandbox` distribution)."""
