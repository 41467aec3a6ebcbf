"""Interoperation with the tools researchers already use: scenarios as Gymnasium environments."""
