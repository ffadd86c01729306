"""Accounts, people, passwords, access tokens and secrets at rest."""
