"""factory_boy factories. Where a case's state matters, tests build it through services."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from cases.models import Department, Membership, ServicePromise
from connectors.models import Channel
from customers.models import Customer, Identity


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.django.Password("pw-for-tests-1")


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Department {n}")
    slug = factory.Sequence(lambda n: f"department-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    department = factory.SubFactory(DepartmentFactory)
    role = Membership.Role.AGENT


class ChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Channel
        django_get_or_create = ("slug",)

    kind = Channel.Kind.X
    name = factory.Sequence(lambda n: f"Channel {n}")
    slug = factory.Sequence(lambda n: f"channel-{n}")
    department = factory.SubFactory(DepartmentFactory)
    account_id = factory.Sequence(lambda n: f"{9000 + n}")


class ServicePromiseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServicePromise

    channel = factory.SubFactory(ChannelFactory)
    first_response_minutes = 60
    next_response_minutes = 60
    resolution_minutes = 24 * 60


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Faker("name")


class IdentityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Identity

    customer = factory.SubFactory(CustomerFactory)
    kind = Identity.Kind.X
    platform_id = factory.Sequence(lambda n: f"{100000 + n}")
    handle = factory.Sequence(lambda n: f"customer{n}")
