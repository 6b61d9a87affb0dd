"""The Collections policy pack: rules in infra.policies.rules, the pack itself in __main__.py."""
