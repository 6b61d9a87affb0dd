"""Pulumi components of the Collections stack, one AWS concern each (type tokens collections:<module>:<Name>)."""
