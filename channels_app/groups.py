"""The only place channel-layer group names are made.

Names use dots (the layer allows ``[a-zA-Z0-9_.-]``, under 100 characters); a client
never names a group, the server picks them from the user's role and departments.
"""


def case_group(case_id: int) -> str:
    return f"case.{int(case_id)}"


def department_group(department_id: int) -> str:
    return f"dept.{int(department_id)}"


def user_group(user_id: int) -> str:
    return f"user.{int(user_id)}"


def supervisors_group() -> str:
    return "supervisors"
