"""Signed reply addresses name a ticket and cannot be forged (pure code)."""

from transcripts.reply_address import address_for, ticket_of, valid_template

TEMPLATE = "support+{token}@example.org"
SECRET = b"s" * 32


def test_the_address_of_a_ticket_leads_back_to_it():
    """A ticket's own reply address, in any case, names that ticket."""
    address = address_for(TEMPLATE, SECRET, "LC-7K3F9Q")
    assert address.startswith("support+lc-7k3f9q-") and address.endswith("@example.org")
    assert ticket_of(["someone@else.example", address.upper()], TEMPLATE, SECRET) == "LC-7K3F9Q"


def test_another_reference_with_the_same_signature_is_refused():
    """Changing the reference (or the secret) breaks the signature."""
    address = address_for(TEMPLATE, SECRET, "LC-7K3F9Q")
    assert ticket_of([address.replace("7k3f9q", "7k3f9r")], TEMPLATE, SECRET) is None
    assert ticket_of([address], TEMPLATE, b"t" * 32) is None


def test_an_address_on_another_domain_or_shape_is_ignored():
    """Only the configured mailbox counts."""
    token = address_for(TEMPLATE, SECRET, "LC-7K3F9Q").split("+")[1].split("@")[0]
    assert ticket_of([f"support+{token}@example.net", f"help+{token}@example.org"], TEMPLATE, SECRET) is None


def test_templates_need_one_token_in_the_local_part():
    """A template without {token}, with two, or with it in the domain is refused."""
    assert valid_template(TEMPLATE)
    assert not valid_template("support@example.org")
    assert not valid_template("{token}+{token}@example.org")
    assert not valid_template("support@{token}.example.org")
