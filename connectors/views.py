from django.http import HttpResponse


def webhook(request, slug):
    return HttpResponse(status=404)
