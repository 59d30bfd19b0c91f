"""Human handoff: tickets, their states, and the moderator desk."""
