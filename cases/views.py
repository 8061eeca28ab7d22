from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from . import permissions, selectors
from .models import Case


@login_required
def queue(request):
    cases = selectors.case_queue(user=request.user)[:50]
    return render(request, "cases/queue.html", {"cases": cases})


@login_required
def case_detail(request, reference):
    case = get_object_or_404(
        Case.objects.filter(permissions.visible_cases_q(request.user)).distinct(), reference=reference
    )
    return render(
        request, "cases/case_detail.html", {"case": case, "timeline": selectors.case_timeline(case=case)}
    )
