"""Signing the mail account in with OAuth 2.0: providers, the authorization-code flow, and access tokens for XOAUTH2."""
