"""Import raises a BaseException that is not an Exception."""


class Boom(BaseException):
    pass


raise Boom("boom at import")
