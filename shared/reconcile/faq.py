"""The FAQ answers that `explain` quotes, keyed by the situation they answer."""

from __future__ import annotations

FAQ: dict[str, tuple[str, str]] = {
    "deactivated": (
        "Why are users in Emply being deactivated?",
        "There can be multiple reasons as to why the connection between Entra ID and Emply is "
        "being interrupted: the Entra ID user has moved out of the connected Entra ID group(s); "
        "the connected Entra ID group is shut down; the Microsoft Entra ID Tenant has changed; "
        "the user domain has been changed.",
    ),
    "removed_from_group": (
        "What happens to a synchronized user when it is removed from the Entra ID group?",
        "It is deactivated in Emply and can be found under deactivated users.",
    ),
    "deleted_still_employee": (
        "I have deleted a user in Microsoft Entra ID, but the user still exists under 'Active' "
        "in Emply. How can this be?",
        "If an employee resigns or is terminated, you must remember to enter a resignation date "
        "for the employee in Emply so that the employee is moved to 'Pending' and then "
        "'Archived' when you reach the resignation date.",
    ),
    "employee_without_account": (
        "Why is there an error in synchronization of users?",
        "When connecting an employee profile in Emply with a user in Microsoft Entra ID, you "
        "must create an account for the employee first. So long as the e-mail used for the two "
        "users is identical, they should be connected automatically.",
    ),
    "matching": (
        "Can I manually create users and will this be impacted by user synchronization?",
        "Yes, you can. If a user has the same username or the same e-mail it will automatically "
        "connect to Microsoft Entra ID's user and be synchronized. External users that are not "
        "part of the connected Microsoft Entra ID can be created in Emply.",
    ),
    "one_way": (
        "Why is the Emply user not changing when the connected Microsoft Entra ID user changes "
        "information?",
        "The integration is a one-way road from Microsoft Entra ID to Emply and simply creates a "
        "user but cannot update it. The employee profile is in control of the data.",
    ),
    "roles_single": (
        "Why do the users not receive the expected roles, but only a single one?",
        '"Synchronize roles" must be activated in the Microsoft Entra ID integration from Emply '
        "and the Entra ID user must be part of the configured Entra ID groups.",
    ),
    "roles_employee_profile": (
        'What is the logic applied with the "Synchronize roles" toggle after first sync? '
        "(case 1)",
        "If the user has an employee profile, the only thing that can be done through sync is "
        "modifying the status of the user (active / not active).",
    ),
    "roles_sync": (
        'What is the logic applied with the "Synchronize roles" toggle after first sync? '
        "(case 2)",
        "Roles that match the user's groups are left alone, extra roles stay (2A, 2B); when the "
        "user lacks a role mapped from its groups, its roles become those matching the groups "
        "(2C); a changed mapping moves the role (2D).",
    ),
    "calendars": (
        "Why is Emply not synchronized with the calendar?",
        "Check if the calendar is deactivated under the relevant user. Synchronization must be "
        "enabled: Once enabled, the integration will add all Entra ID calendars where the "
        "Entra ID user has editing rights or higher to Emply automatically. The Entra ID "
        "user's own default calendar will be added without the Disable button but all "
        "additional calendars will be added with the \"Disable/Enable\" buttons. Additional "
        "calendars will be added to Emply as \"Disabled\" by default.",
    ),
    "ms365_calendar": (
        "How do I synchronize the calendar with MS365?",
        "In the integration set up you must activate synchronization of the calendar. When "
        "the synchronization is activated the data can be used in Emply's calendar "
        "functionality. Additionally, Emply can create events in the MS365 calendar.",
    ),
    "removed": (
        "What happens if I remove the Microsoft Entra ID integration?",
        "The calendar synchronization stops, the Outlook events will no longer be visible in "
        "Emply after next synchronization, new users connected to an Entra ID group will not "
        "be created in Emply. If you have configured Emply to update Microsoft Entra ID "
        "users, this will stop.",
    ),
    "administrator": (
        "Emply users with administrator roles are not updated via role synchronization?",
        "This is a choice we have taken in Emply so that access to administrators are not "
        "unintentionally removed on accident. This covers only the role itself, not the user.",
    ),
    "delete": (
        "How do the rules for deletion of users function?",
        "By allowing Emply to delete the Microsoft Entra ID user, the Microsoft Entra ID user "
        "is moved to deleted users in Microsoft Entra ID.",
    ),
    "write_back": (
        "Why is the Emply user not changing when the connected Microsoft Entra ID user changes "
        "information?",
        "The employee profile is in control of the data, and therefore overwrites changes from "
        "Microsoft Entra ID. The updates can occur from Emply to Microsoft Entra ID.",
    ),
    "write_back_option": (
        "Emply updates data in Microsoft Entra ID. How can this be avoided?",
        "This is caused by an option in the Microsoft Entra ID integration set up that has "
        "been activated to allow Emply to update data in Microsoft Entra ID. In this case you "
        "simply need to remove the tick mark and then save to avoid these updates from Emply "
        "in the future.",
    ),
    "hybrid_update": (
        "Why is it not possible to update Microsoft Entra ID users from Emply?",
        "This can be due to a hybrid Entra ID, where Entra ID OnPrem updates Microsoft Entra "
        "ID. Please be aware that MS does not allow transfer to Microsoft Entra ID.",
    ),
    "hybrid_setup": (
        "Can I use the Microsoft Entra ID integration when I have a hybrid setup?",
        "It is possible to set up the integration, but it can only synchronize data from "
        "Microsoft Entra ID to Emply. This means that the three extra options (create, update, "
        "delete) are not possible to enable.",
    ),
}


def answer(key: str) -> dict[str, str]:
    question, text = FAQ[key]
    return {"question": question, "answer": text}
