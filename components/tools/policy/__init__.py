"""The stack's CrossGuard policy pack.

policies.py holds the policies (importing it starts nothing); __main__.py serves them to the
Pulumi engine as the pack "observability-policies". From the repository root:

    pulumi preview --stack prod --policy-pack components/tools/policy
"""
