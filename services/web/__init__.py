"""The browser app: static files under app/ (plain ES modules and CSS, no build step), and what any
server of them needs to know (services.web.site). Served locally by services.web.devserver
(`make dev`) and on AWS from a private bucket behind CloudFront (infra/components/web.py).
Not shipped to Lambda (infra/artifacts.py excludes this package)."""
