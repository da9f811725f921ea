from django.core.exceptions import ValidationError


def format_validation_error(exc: ValidationError) -> str:
    """One line, field by field, for command-line output."""
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)
