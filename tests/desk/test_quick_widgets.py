"""The queue's filter controls are printed by QuickWidgetRenderer: the same bytes as Django's
own widget templates, for every field and any input (valid, invalid, hostile)."""

from __future__ import annotations

import pytest
from django import forms as django_forms
from django.forms.renderers import DjangoTemplates
from django.http import QueryDict
from django.urls import reverse

from cases import forms
from cases.templatetags.desk import quick_widget_renderer
from tests import factories

QUERIES = [
    "",
    "view=department",
    "view=at_risk&kind=email&priority=urgent&status=waiting_on_customer&department={department}",
    "kind=bogus&priority=%3Cb%3E&department=999999&status=closed",  # refused values: aria-invalid
    "q=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E%20%26%20%27x%27",
    "q=" + "long" * 60,  # past max_length: an error on the search box
]


@pytest.mark.django_db
@pytest.mark.parametrize("query", QUERIES)
def test_filter_controls_print_as_django_prints_them(department, other_department, query):
    departments = [department, factories.DepartmentFactory(name='R&D <"lab">', slug="rnd")]
    data = QueryDict(query.format(department=department.pk))

    def rendered(renderer) -> dict[str, str]:
        form = forms.QueueFilterForm(data, departments=departments, renderer=renderer)
        form.is_valid()
        return {name: str(form[name]) for name in form.fields}

    quick, django = rendered(quick_widget_renderer), rendered(DjangoTemplates())

    assert quick == django
    assert all(html.startswith(("<select", "<input")) for html in quick.values())


@pytest.mark.django_db
def test_other_widgets_are_left_to_the_templates():
    class Other(django_forms.Form):
        grouped = django_forms.ChoiceField(
            choices=[("Fruit", [("a", "Apple"), ("b", "Banana")]), ("c", "Cake")]
        )
        text = django_forms.CharField(widget=django_forms.Textarea)
        many = django_forms.MultipleChoiceField(
            choices=[("a", "A"), ("b", "B")], widget=django_forms.CheckboxSelectMultiple
        )

    data = QueryDict("grouped=b&text=%3Chi%3E&many=a")
    quick = Other(data, renderer=quick_widget_renderer)
    django = Other(data, renderer=DjangoTemplates())

    assert {name: str(quick[name]) for name in quick.fields} == {
        name: str(django[name]) for name in django.fields
    }
    assert "<optgroup" in str(quick["grouped"])


def test_the_queue_page_uses_it(client, agent, monkeypatch):
    calls = []
    monkeypatch.setattr(
        type(quick_widget_renderer),
        "render",
        lambda self, name, context, request=None: calls.append(name) or "",
    )
    client.force_login(agent)

    assert client.get(reverse("desk:queue"), {"view": "department"}).status_code == 200
    assert "django/forms/widgets/select.html" in calls
