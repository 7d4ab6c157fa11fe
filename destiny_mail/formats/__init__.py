"""How the pages write dates in each language (FORMAT_MODULE_PATH); what is not set here is Django's."""
